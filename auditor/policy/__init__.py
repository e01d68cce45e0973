"""auditor.policy"""
