"""auditor.store"""
