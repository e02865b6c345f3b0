"""Shipped pretrained models: the model files, their cards (card.py) and the script that remakes them (remake.py)."""
