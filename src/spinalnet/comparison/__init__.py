"""``spinalnet compare``: a grid of (arm, seed) runs, trained alike, summarised with paired statistics."""
