"""Training: state pytrees, step builders and the host loop."""
