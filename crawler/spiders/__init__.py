"""Spiders decide what to fetch."""
