"""Pictures for the README, drawn by scripts kept here."""
