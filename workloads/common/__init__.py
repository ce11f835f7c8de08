"""Pieces every pipeline shares: object storage, validation errors."""
