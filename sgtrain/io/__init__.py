"""sgtrain.io"""
