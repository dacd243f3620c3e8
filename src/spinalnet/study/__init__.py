"""A study: one comparison per setting (backbone, dataset), pooled into one verdict (spinalnet.meta) and drawn
(spinalnet.study.plots)."""
