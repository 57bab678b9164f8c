"""reports: HTML and Markdown rendering of audit results, and their plots."""
