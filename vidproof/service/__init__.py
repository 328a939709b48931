"""The recorder appliance: a supervisor of capture workers and a FastAPI app."""
