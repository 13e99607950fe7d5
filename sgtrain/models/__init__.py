"""sgtrain.models"""
