"""netedge shared."""
