"""Stratus's Flower app: a numpy logistic regression trained with FedAvg across data-resident sites.

Shipped to the SuperLink as a Flower App Bundle (the folder above holds its ``pyproject.toml``); inside the
bundle this package is imported as ``stratus_fl``, so its modules import each other relatively.
"""
