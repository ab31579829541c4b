"""Jobs and their run history arrive with the jobs issue; the app starts without models."""
