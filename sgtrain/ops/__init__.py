"""sgtrain.ops"""
