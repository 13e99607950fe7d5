"""sgtrain.training"""
