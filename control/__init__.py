"""rvcd.control"""
