"""auditor.report"""
