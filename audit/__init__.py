"""audit: splitting, scoring and orchestration; audit.tracking is the only MLflow user."""
