"""Fine-tuning: one file per method (rwr.py, ddpo.py, ddpo_trl.py) beside what they share."""
