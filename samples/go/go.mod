module kiln.example/classify

go 1.19
