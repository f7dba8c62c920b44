"""The backproof CDK app: one construct per concern, the stack only composes them."""
