SELECT MIN(first) - {now} FROM ({queues}) AS due
