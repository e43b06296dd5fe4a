"""Face detection, quality, alignment and embedding. Pure torch + numpy: no Ray, no Milvus."""
