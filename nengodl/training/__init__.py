"""Training and evaluation: one trainer run by the seed API and the Keras-style API."""
