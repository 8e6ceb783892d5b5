"""The course kit: assignments with graders made from the concept files (see make.py)."""
