"""Text-to-image side of t2i-align: prompts, generation, fine-tuning, evaluation, reports and the CLI."""
