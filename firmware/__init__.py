"""netedge firmware."""
