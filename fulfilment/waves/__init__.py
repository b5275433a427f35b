"""Waves (波次): the order cycle and a wave's deadline (`cycle`, `deadlines`), the deals offered for
the waves to come (`offers`), the cutoff with its aggregation (`cutoff`) and the pick lists
(`picklists`)."""
