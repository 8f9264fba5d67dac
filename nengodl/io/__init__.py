"""What goes in and out of a simulator: checked user input, probe data, parameters."""
