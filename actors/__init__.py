"""The service's actors and the business rules they enforce.

Depends on ``supervisors`` only; the node (``whispr``) supplies the ports'
implementations (store, broker).
"""
