"""Console commands: demo, eval-bag, bag writer, FC-CLIP converter."""
