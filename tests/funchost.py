"""Moved to devstack/funchost.py (``make up`` serves the API with it); kept for the tests."""

from devstack.funchost import FunctionHost as FunctionHost
from devstack.funchost import client_principal as client_principal
from devstack.funchost import http_routes as http_routes
