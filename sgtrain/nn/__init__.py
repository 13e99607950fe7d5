"""sgtrain.nn"""
