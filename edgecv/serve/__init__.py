"""What apps embed: the torch-free Predictor, and the IsolatedPredictor that runs one in a child process.
"""
