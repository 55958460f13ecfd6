import os
import sys

# Tests import the repo's packages without installing them.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
