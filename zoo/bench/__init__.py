"""The benchmark: every recipe fitted, evaluated and exported under one budget, and its report."""
