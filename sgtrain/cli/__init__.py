"""sgtrain.cli"""
