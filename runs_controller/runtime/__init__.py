"""Controller runtime: workqueue, rate limiters and the machinery that feeds reconcilers."""
