"""PDF rendering (fpdf2): the monthly statement."""
