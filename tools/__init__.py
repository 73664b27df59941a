"""netedge tools."""
