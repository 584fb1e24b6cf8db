"""rvcd.dsp"""
