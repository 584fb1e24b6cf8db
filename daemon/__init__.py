"""rvcd.daemon"""
