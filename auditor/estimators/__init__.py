"""auditor.estimators"""
