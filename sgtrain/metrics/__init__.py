"""sgtrain.metrics"""
