"""The CRM side of the sync: the port, the local emulator and the Salesforce adapter.

See docs/crm.md.
"""
