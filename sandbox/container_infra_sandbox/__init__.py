"""The sandbox cloud's emulated hardware.

Installed into the sandbox services' virtual environment only; the toolkit never imports it.
"""
