"""Public model zoos as catalog sets: entries generated from the timm and torchvision
registries (``cnn-filter-db catalog generate``), written so that regenerating never
overwrites a hand edit."""
