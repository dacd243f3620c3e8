"""The paper's regression study (an ordinary MLP against a SpinalNet), with held-out test data."""
