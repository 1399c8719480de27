"""audit-trail: the operator's and regulator's command line."""
