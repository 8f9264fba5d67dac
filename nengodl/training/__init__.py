"""Training and evaluation: one trainer run by NengoDL 2's API and the Keras-style API."""
