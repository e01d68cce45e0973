"""auditor.lineage"""
