"""auditor.execution"""
