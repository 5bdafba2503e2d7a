"""factory: build clean, documented fine-tuning datasets for small student models.

A teacher model writes records from prompt templates and a few real seed examples; filters remove
what makes synthetic data dangerous; the result is a Hugging Face–loadable dataset folder.
"""

__version__ = "0.1.0"
