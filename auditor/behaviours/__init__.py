"""auditor.behaviours"""
