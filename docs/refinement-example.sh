set -e
COMMON="-default_F 100 -lambda 1 -N 5 -pixel 0.2 -detpixels 256"
nbsim run -cell 50 60 70 85 95 105 -misset 10 20 30 -distance 60 $COMMON -seed 11 \
    -noisefile truth.img -nopgm -noprogress > truth.log
nbsim refine -cell 50.5 59.4 70.7 85.85 94.05 106.05 -misset 10.2 19.8 30.2 -distance 60.6 \
    -Xbeam 25.8 -Ybeam 25.6 $COMMON \
    --observed truth.img --refine cell,distance,beam_center,misset --json refined.json
